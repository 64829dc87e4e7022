"""The prepared-data contract: the on-disk format the prepare stage writes and every later stage reads.

`splits` writes and reads `data/prepared/{train,val,test}.npz` and its `manifest.json` (whose sha256 names the data
version); `profile` summarises a split (image shape, class shares, per-image features) for the drift check, the
summary a champion keeps as `data_profile.json`. numpy only: no torch, no stage.
"""
