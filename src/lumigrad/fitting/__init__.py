"""``lumigrad fit``: a configuration file names the scene, the data, the unknowns, the losses and the schedule;
:func:`run_fit` recovers the unknowns and writes an output folder with a report. See ``docs/fit.md``."""

from .config import ConfigError, FitConfig, load_config, parse_config
from .problem import Problem, build_problem
from .run import FitOutcome, run_fit

__all__ = ["ConfigError", "FitConfig", "FitOutcome", "Problem", "build_problem", "load_config", "parse_config",
           "run_fit"]
