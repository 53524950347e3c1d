"""Recover images from y = A x + noise: ``python recover.py checkpoint=latest measurements=[25,50,100,200]``
(= ``csgm-recover``)."""

from csgm.commands import recover_command

if __name__ == "__main__":
    recover_command()
