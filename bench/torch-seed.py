# The seed model (the notebook's CNN, bench/seed-model.ts) trained by PyTorch on random data, for
# bench/train.ts's `pytorch` config: the same layers, batch size and optimizer (Keras-rule RMSprop
# lr 1e-3, rho 0.9, eps 1e-7: torch's RMSprop adds eps outside the square root, a negligible
# difference in cost). Prints one line: RESULT {"imgPerSec": ..., "imgPerCpuSec": ..., ...}.
#
#   python3 bench/torch-seed.py [--batches 40] [--batch-size 128] [--threads 2] [--channels-last]
import argparse
import json
import time

import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--batches", type=int, default=40)
p.add_argument("--batch-size", type=int, default=128)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--channels-last", action="store_true")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(42)

model = nn.Sequential(
    nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
    nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
    nn.MaxPool2d(2), nn.Dropout(0.25),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
    nn.Conv2d(64, 64, 3), nn.ReLU(),
    nn.MaxPool2d(2), nn.Dropout(0.25),
    nn.Flatten(),
    nn.Linear(7 * 7 * 64, 512), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(512, 10),
)
opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
loss_fn = nn.CrossEntropyLoss()
x = torch.rand(a.batch_size, 3, 32, 32)
y = torch.randint(0, 10, (a.batch_size,))
if a.channels_last:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)


def step():
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


step()  # warm-up
c0, t0 = time.process_time(), time.perf_counter()
for _ in range(a.batches):
    step()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
images = a.batches * a.batch_size
print("RESULT " + json.dumps({
    "imgPerSec": images / wall, "imgPerCpuSec": images / cpu, "stepMs": 1000 * wall / a.batches,
    "batches": a.batches, "batchSize": a.batch_size, "threads": torch.get_num_threads(), "torch": torch.__version__,
}))
