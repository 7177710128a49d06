"""A training run and its folder: `train.train()` (fit, test evaluation, diagnosis), the run folder
as one object (`rundir.RunDir`), its checks and lock (`folder`), resuming (`resume`), safe writes
(`storage`, every file echodepth writes) and stops by signal (`interrupt`).

Nothing is imported here: `storage` and `rundir` are imported by every layer, `train` by few.
"""
