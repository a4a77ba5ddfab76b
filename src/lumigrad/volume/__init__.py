"""Volume rendering: ray sampling, compositing, fields (grids, hash grid, MLPs) and occupancy acceleration."""
