{
  "targets": [
    {
      "target_name": "dnnl_kernels",
      "sources": ["dnnl-kernels.cc"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-trapping-math", "-fexceptions", "-fopenmp"],
      "libraries": ["-ldnnl", "-fopenmp"]
    }
  ]
}
