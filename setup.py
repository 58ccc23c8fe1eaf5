"""chamtvm: platform-aware neural architecture adaptation (ChamNet) through Apache TVM."""

from setuptools import find_packages, setup

setup(
    name="chamtvm",
    version="0.1.0",
    description="ChamNet-style platform-aware model adaptation compiled and measured with Apache TVM",
    packages=find_packages(include=["chamtvm", "chamtvm.*"]),
    package_data={"chamtvm": ["space/spaces/*.json", "targets/builtin/*.json", "devices/*.sh",
                              "accuracy/data/*"]},
    python_requires=">=3.10",
    install_requires=[
        # torch first and pinned (see README): an unpinned torch pulls CUDA wheels.
        "torch==2.13.0",
        "apache-tvm==0.27.0.post1",
        # 0.1.15.post2 segfaults on IR JSON serialization with tvm 0.27.0.post1.
        "apache-tvm-ffi==0.1.14.post1",
        "psutil",
        "tornado",
        "cloudpickle",
        "xgboost",
        "scikit-learn",
        "scipy",
        "numpy",
        "onnx",
        "tqdm",
        "matplotlib",
        "filelock",
        # --executor dask://HOST:PORT: trainings on a Dask distributed cluster
        "dask[distributed]",
    ],
    # onnxruntime: benchmarks/bench_deployed.py (TVM against ONNX Runtime on the same model)
    extras_require={"dev": ["pytest", "hypothesis", "onnxruntime"]},
    entry_points={"console_scripts": ["chamtvm=chamtvm.cli.main:main"]},
)
