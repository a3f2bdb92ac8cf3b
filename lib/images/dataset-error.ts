// Bad or unrecognised input data. Stage kinds turn it into a StageError (one line: what and where).
export class DatasetError extends Error {}
