from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path("ammpl/__init__.py").read_text(), version)

setup(
    name="ammpl",
    version=version["__version__"],
    description="Prompt learning on CLIP: AMMPL and the methods it is compared with",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["ammpl", "ammpl.*"]),
    include_package_data=True,
    package_data={"ammpl": ["py.typed", "resources/*"]},
    install_requires=[
        "torch>=2.6",
        "torchvision",
        "open_clip_torch>=2.24",
        "yacs",
        "tabulate",
        "tqdm",
        "pillow",
        "numpy",
        "scipy",
        "matplotlib",
    ],
    extras_require={
        # pytest-xdist: `make test` runs the suite on one worker per core
        "test": ["pytest", "pytest-xdist", "ruff", "submitit", 'ray; python_version < "3.14"'],
        # ammpl-sweep's slurm and ray executors
        "cluster": ["submitit", "ray"],
    },
    entry_points={
        "console_scripts": [
            "ammpl-train=ammpl.cli.train:main",
            "ammpl-data=ammpl.data.cli:main",
            "ammpl-viz=ammpl.cli.viz:main",
            "ammpl-results=ammpl.results.cli:main",
            "ammpl-sweep=ammpl.sweep.cli:main",
        ]
    },
)
