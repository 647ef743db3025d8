"""ET lesions: axial view, 3D components, bidimensional products, tracking (clinical-spec 5.2, 8.2).

Pure: numpy/scipy/scikit-image only, no I/O.
"""

from engine.lesions.axial import AxialView, axial_view
from engine.lesions.bidimensional import SliceDiameters, measure_slice
from engine.lesions.components import Lesion, find_lesions, select_targets, sum_of_products
from engine.lesions.tracking import LesionMatch, Matching, iou_matrix, match_lesions, outside_field

__all__ = [
    "AxialView",
    "Lesion",
    "LesionMatch",
    "Matching",
    "SliceDiameters",
    "axial_view",
    "find_lesions",
    "iou_matrix",
    "match_lesions",
    "measure_slice",
    "outside_field",
    "select_targets",
    "sum_of_products",
]
