"""Presentation, above the library: the Spot demo's fits (:mod:`~lumigrad.app.demo`), images and plots
(:mod:`~lumigrad.app.report`), the HTML fit report (:mod:`~lumigrad.app.report_html`) and the timing helpers of
``lumigrad bench`` and ``benchmarks/`` (:mod:`~lumigrad.app.benchmarking`).

Nothing below this package imports it (``tests/test_layers.py``); ``fitting``, the CLI, examples and benchmarks
do. Its submodules are imported by name (``from lumigrad.app.report import save_image_grid``): importing the
package loads none of them.
"""
