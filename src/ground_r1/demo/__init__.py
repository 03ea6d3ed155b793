"""The CPU demo's scaffolding, kept apart from the method: the synthetic zoom-in task, the tiny offline models,
the recipe that pretrains the demo's instruct base (and its throwaway heads), and the scripted policies that
tests and benchmarks use in place of sampling.

Nothing here is needed to train or evaluate a real checkpoint on real data. The core imports this package only at
the embedded-default entry points (a CLI run with no model or data given) and where a test-only option
(`scripted_policy`) asks for it.
"""
