"""Infrastructure written once: files (atomic writes, hashing), device and AMP resolution,
``torch.distributed`` set-up and memory hygiene. Imports nothing else from :mod:`salience_lib`."""
