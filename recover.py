"""Recover images from y = A x + noise: ``python recover.py checkpoint=latest measurements=[25,50,100,200]``."""

import hydra
from omegaconf import DictConfig

from csgm.cli import hydra_run_dir, report_errors, run_entry
from csgm.recovery.identity import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="recover")
@report_errors
def main(cfg: DictConfig) -> None:
    from csgm.recovery.run import recover
    from csgm.reporting.table import format_summary

    result = recover(cfg, hydra_run_dir())
    if result:
        print(format_summary(result["summary"]))
        for name, path in result["paths"].items():
            print(f"{name:<14} {path}")


if __name__ == "__main__":
    run_entry(main)
