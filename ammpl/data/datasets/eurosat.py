"""EuroSAT (RGB): 10 land-cover classes, every class name rewritten into words."""

from __future__ import annotations

from ammpl.data.datasets.dtd import FolderSplitDataset
from ammpl.data.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class EuroSAT(FolderSplitDataset):
    """Paths keep the folder names (`AnnualCrop/...`); class names are the renamed ones."""

    dataset_dir = "eurosat"
    image_subdir = "2750"
    split_file = "split_zhou_EuroSAT.json"
    fallback_files = ("2750",)
    renames = {
        "AnnualCrop": "Annual Crop Land",
        "Forest": "Forest",
        "HerbaceousVegetation": "Herbaceous Vegetation Land",
        "Highway": "Highway or Road",
        "Industrial": "Industrial Buildings",
        "Pasture": "Pasture Land",
        "PermanentCrop": "Permanent Crop Land",
        "Residential": "Residential Buildings",
        "River": "River",
        "SeaLake": "Sea or Lake",
    }
    download = (
        "EuroSAT.zip (the RGB release) extracted so that eurosat/2750/<Class>/ exists (rename "
        "the folder to 2750 if your copy unpacks elsewhere), and split_zhou_EuroSAT.json "
        "into eurosat/"
    )
