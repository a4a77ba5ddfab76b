"""Spectra to linear sRGB, as Mitsuba 3's RGB variants convert the spectra written in a scene file.

A spectrum given as ``wavelength:value`` pairs (nanometres) is linearly interpolated, integrated against the
CIE 1931 2-degree colour matching functions over 360..830 nm (1000 evenly spaced samples, the tables below
interpolated linearly between their 5 nm rows), normalised so that a constant spectrum of 1 has luminance
``Y = 1``, and mapped from XYZ to linear sRGB (D65 white). Reflectances are weighted by the D65 illuminant
(normalised to unit luminance), so that a constant reflectance of 1 is white, and clamped to [0, 1];
emission spectra are not weighted and only clamped at 0. Outside the first and last given wavelength the
spectrum is 0. This is what Mitsuba 3 does (``spectrum_list_to_srgb``), so a file reads to the colours
Mitsuba's ``*_rgb`` variants render with, to about 1e-3.

The tables are the CIE 1931 2-degree standard observer and the CIE standard illuminant D65 (CIE 15:2004),
sampled at 5 nm.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["spectrum_to_rgb"]

# wavelength (nm), x-bar, y-bar, z-bar, D65 relative spectral power (100 at 560 nm)
_CIE_ROWS = (
    (360, 0.0001299, 3.917e-06, 0.0006061, 46.6383),
    (365, 0.0002321, 6.965e-06, 0.001086, 49.3637),
    (370, 0.0004149, 1.239e-05, 0.001946, 52.0891),
    (375, 0.0007416, 2.202e-05, 0.003486, 51.0323),
    (380, 0.001368, 3.9e-05, 0.00645, 49.9755),
    (385, 0.002236, 6.4e-05, 0.01055, 52.3118),
    (390, 0.004243, 0.00012, 0.02005, 54.6482),
    (395, 0.00765, 0.000217, 0.03621, 68.7015),
    (400, 0.01431, 0.000396, 0.06785, 82.7549),
    (405, 0.02319, 0.00064, 0.1102, 87.1204),
    (410, 0.04351, 0.00121, 0.2074, 91.486),
    (415, 0.07763, 0.00218, 0.3713, 92.4589),
    (420, 0.13438, 0.004, 0.6456, 93.4318),
    (425, 0.21477, 0.0073, 1.03905, 90.057),
    (430, 0.2839, 0.0116, 1.3856, 86.6823),
    (435, 0.3285, 0.01684, 1.62296, 95.7736),
    (440, 0.34828, 0.023, 1.74706, 104.865),
    (445, 0.34806, 0.0298, 1.7826, 110.936),
    (450, 0.3362, 0.038, 1.77211, 117.008),
    (455, 0.3187, 0.048, 1.7441, 117.41),
    (460, 0.2908, 0.06, 1.6692, 117.812),
    (465, 0.2511, 0.0739, 1.5281, 116.336),
    (470, 0.19536, 0.09098, 1.28764, 114.861),
    (475, 0.1421, 0.1126, 1.0419, 115.392),
    (480, 0.09564, 0.13902, 0.81295, 115.923),
    (485, 0.05795, 0.1693, 0.6162, 112.367),
    (490, 0.03201, 0.20802, 0.46518, 108.811),
    (495, 0.0147, 0.2586, 0.3533, 109.082),
    (500, 0.0049, 0.323, 0.272, 109.354),
    (505, 0.0024, 0.4073, 0.2123, 108.578),
    (510, 0.0093, 0.503, 0.1582, 107.802),
    (515, 0.0291, 0.6082, 0.1117, 106.296),
    (520, 0.06327, 0.71, 0.07825, 104.79),
    (525, 0.1096, 0.7932, 0.05725, 106.239),
    (530, 0.1655, 0.862, 0.04216, 107.689),
    (535, 0.22575, 0.91485, 0.02984, 106.047),
    (540, 0.2904, 0.954, 0.0203, 104.405),
    (545, 0.3597, 0.9803, 0.0134, 104.225),
    (550, 0.43345, 0.99495, 0.00875, 104.046),
    (555, 0.51205, 1, 0.00575, 102.023),
    (560, 0.5945, 0.995, 0.0039, 100),
    (565, 0.6784, 0.9786, 0.00275, 98.1671),
    (570, 0.7621, 0.952, 0.0021, 96.3342),
    (575, 0.8425, 0.9154, 0.0018, 96.0611),
    (580, 0.9163, 0.87, 0.00165, 95.788),
    (585, 0.9786, 0.8163, 0.0014, 92.2368),
    (590, 1.0263, 0.757, 0.0011, 88.6856),
    (595, 1.0567, 0.6949, 0.001, 89.3459),
    (600, 1.0622, 0.631, 0.0008, 90.0062),
    (605, 1.0456, 0.5668, 0.0006, 89.8026),
    (610, 1.0026, 0.503, 0.00034, 89.5991),
    (615, 0.9384, 0.4412, 0.00024, 88.6489),
    (620, 0.85445, 0.381, 0.00019, 87.6987),
    (625, 0.7514, 0.321, 0.0001, 85.4936),
    (630, 0.6424, 0.265, 5e-05, 83.2886),
    (635, 0.5419, 0.217, 3e-05, 83.4939),
    (640, 0.4479, 0.175, 2e-05, 83.6992),
    (645, 0.3608, 0.1382, 1e-05, 81.863),
    (650, 0.2835, 0.107, 0, 80.0268),
    (655, 0.2187, 0.0816, 0, 80.1207),
    (660, 0.1649, 0.061, 0, 80.2146),
    (665, 0.1212, 0.04458, 0, 81.2462),
    (670, 0.0874, 0.032, 0, 82.2778),
    (675, 0.0636, 0.0232, 0, 80.281),
    (680, 0.04677, 0.017, 0, 78.2842),
    (685, 0.0329, 0.01192, 0, 74.0027),
    (690, 0.0227, 0.00821, 0, 69.7213),
    (695, 0.01584, 0.005723, 0, 70.6652),
    (700, 0.0113592, 0.004102, 0, 71.6091),
    (705, 0.00811092, 0.002929, 0, 72.979),
    (710, 0.00579035, 0.002091, 0, 74.349),
    (715, 0.00410946, 0.001484, 0, 67.9765),
    (720, 0.00289933, 0.001047, 0, 61.604),
    (725, 0.00204919, 0.00074, 0, 65.7448),
    (730, 0.00143997, 0.00052, 0, 69.8856),
    (735, 0.000999949, 0.0003611, 0, 72.4863),
    (740, 0.000690079, 0.0002492, 0, 75.087),
    (745, 0.000476021, 0.0001719, 0, 69.3398),
    (750, 0.000332301, 0.00012, 0, 63.5927),
    (755, 0.000234826, 8.48e-05, 0, 55.0054),
    (760, 0.00016615, 6e-05, 0, 46.4182),
    (765, 0.000117413, 4.24e-05, 0, 56.6118),
    (770, 8.30753e-05, 3e-05, 0, 66.8054),
    (775, 5.87065e-05, 2.12e-05, 0, 65.0941),
    (780, 4.15099e-05, 1.499e-05, 0, 63.3828),
    (785, 2.93533e-05, 1.06e-05, 0, 63.8434),
    (790, 2.06738e-05, 7.4657e-06, 0, 64.304),
    (795, 1.45598e-05, 5.2578e-06, 0, 61.8779),
    (800, 1.0254e-05, 3.7029e-06, 0, 59.4519),
    (805, 7.22146e-06, 2.6078e-06, 0, 55.7054),
    (810, 5.08587e-06, 1.8366e-06, 0, 51.959),
    (815, 3.58165e-06, 1.2934e-06, 0, 54.6998),
    (820, 2.52252e-06, 9.1093e-07, 0, 57.4406),
    (825, 1.77651e-06, 6.4153e-07, 0, 58.8765),
    (830, 1.25114e-06, 4.5181e-07, 0, 60.3125),
)
_CIE = np.asarray(_CIE_ROWS, dtype=np.float64)
_CIE_MIN, _CIE_MAX, _STEPS = 360.0, 830.0, 1000
#: Normalisations of the y-bar integral and of D65 (luminance 1) used by Mitsuba 3 (``MI_CIE_Y_NORMALIZATION``,
#: ``MI_CIE_D65_NORMALIZATION``).
_Y_NORMALIZATION = 1.0 / 106.7502
_D65_NORMALIZATION = 1.0 / 98.99741
#: Linear sRGB from CIE XYZ (D65 white), IEC 61966-2-1.
_XYZ_TO_SRGB = np.array([[3.240479, -1.537150, -0.498535],
                         [-0.969256, 1.875991, 0.041556],
                         [0.055648, -0.204043, 1.057311]])


def spectrum_to_rgb(wavelengths: Sequence[float], values: Sequence[float], *, reflectance: bool) -> np.ndarray:
    """Linear sRGB ``[3]`` (float64) of the piecewise-linear spectrum through ``(wavelengths[i], values[i])``.

    Args:
        wavelengths: strictly increasing wavelengths in nanometres (at least two).
        values: the spectrum at those wavelengths.
        reflectance: weight by D65 and clamp to [0, 1] (a reflectance); else an emission spectrum (no
            weighting, clamped at 0 only).

    Example: a constant reflectance of 1 gives about ``(1, 1, 1)``; ``400:0, 500:8, 600:15.6, 700:18.4`` (the
    Cornell box lamp) as emission gives about ``(20.71, 10.85, 2.77)``.

    Raises:
        ValueError: fewer than two wavelengths, lengths that differ, wavelengths not increasing, NaN / Inf.
    """
    w = np.asarray(wavelengths, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if w.ndim != 1 or w.shape != v.shape or w.size < 2:
        raise ValueError(f"a spectrum needs at least two (wavelength, value) pairs; got {w.size}")
    if not (np.isfinite(w).all() and np.isfinite(v).all()):
        raise ValueError("a spectrum's wavelengths and values must be finite")
    if not (np.diff(w) > 0).all():
        raise ValueError("a spectrum's wavelengths must increase strictly")
    x = _CIE_MIN + np.arange(_STEPS) / (_STEPS - 1) * (_CIE_MAX - _CIE_MIN)
    inside = (x >= w[0]) & (x <= w[-1])
    weight = np.interp(x, w, v) * inside
    if reflectance:
        weight = weight * np.interp(x, _CIE[:, 0], _CIE[:, 4]) * _D65_NORMALIZATION
    cmf = np.stack([np.interp(x, _CIE[:, 0], _CIE[:, k]) for k in (1, 2, 3)], -1)
    xyz = (cmf * weight[:, None]).sum(0) * ((_CIE_MAX - _CIE_MIN) / _STEPS) * _Y_NORMALIZATION
    rgb = _XYZ_TO_SRGB @ xyz
    return np.clip(rgb, 0.0, 1.0) if reflectance else np.maximum(rgb, 0.0)
