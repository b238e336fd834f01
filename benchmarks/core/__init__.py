"""The core SDK benchmark: payloads, the benchmarked functions, the no-SDK floor, the worker."""
