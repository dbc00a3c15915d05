"""The benchmarks behind `thalamus bench`: each measures a part of the runtime beside its baseline."""
