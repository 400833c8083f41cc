"""``dse batch``: input expansion lives in :mod:`dsecli.inputs.specs`, the results file in
:mod:`dsecli.batch.store`, the runners in :mod:`dsecli.batch.runners`, the orchestration in
:mod:`dsecli.batch.run`."""

from dsecli.batch.run import BatchSummary, run_batch, split_methods
from dsecli.batch.store import ResultsFile, row_key
from dsecli.inputs.specs import BatchInput, expand_inputs

__all__ = ["BatchInput", "BatchSummary", "ResultsFile", "expand_inputs", "row_key", "run_batch", "split_methods"]
