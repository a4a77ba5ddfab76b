"""Volumes (placeholder of the tomography branch so the package imports; the merge takes volume-ops' file)."""
