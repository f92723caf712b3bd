"""Studies and benchmarks: a layer above the method packages (train, kd, models), used only by
their entry points in bccmt.bin. Nothing in the method packages imports from here.

- kd_study*          the paired-seed KD study (local/kd_study.sh, bccmt.bin.kd_study)
- training_benchmark training throughput (bccmt.bin.benchmark_training)
- scale_training     a bounded number of steps of a training config, measured (scale benchmark)
- model_benchmark    parameters, FLOPs and CPU latency of the models (bccmt.bin.benchmark_models)
"""
