"""The Hydra configs (``recover.yaml``, ``train.yaml``, ``evaluate.yaml`` and their groups).

The repository keeps them here, at its top level; a wheel ships this folder as the package ``csgm.conf``
(see setup.py), which the commands load through Hydra's ``pkg://csgm.conf`` search path.
"""
