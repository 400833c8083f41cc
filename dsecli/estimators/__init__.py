"""Baseline estimators beside DSE/DSMI (docs/method.md#cse to #mine).

- :func:`binned_shannon_entropy` ("cse") and :func:`binned_shannon_mutual_information` ("csmi");
- :func:`kozachenko_leonenko_entropy` ("knn"), Kozachenko & Leonenko 1987;
- :func:`ksg_mutual_information` ("ksg"), Kraskov, Stoegbauer & Grassberger 2004 (estimator 1),
  with Ross 2014 for a discrete reference;
- :func:`mine_mutual_information` ("mine"), Belghazi et al. 2018;
- :func:`infonce_mutual_information` ("infonce"), van den Oord et al. 2018 (MINE's training loop).

All take the data first and keyword-only parameters, start from
:func:`dsecli.inputs.prepare.prepare_rows` (raw data are validated there once; a
:class:`~dsecli.inputs.prepare.Prepared` is trusted, so :func:`dsecli.methods.estimate_entropy` can
give every method the same rows), and return :class:`~dsecli.EntropyResult` / :class:`~dsecli.MIResult`
in bits unless ``base`` says otherwise. torch is imported inside the functions only.
"""

from dsecli.estimators.binned import binned_shannon_entropy, binned_shannon_mutual_information
from dsecli.estimators.kl import kozachenko_leonenko_entropy
from dsecli.estimators.ksg import ksg_mutual_information
from dsecli.estimators.mine import infonce_mutual_information, mine_mutual_information

__all__ = [
    "binned_shannon_entropy",
    "binned_shannon_mutual_information",
    "kozachenko_leonenko_entropy",
    "ksg_mutual_information",
    "mine_mutual_information",
    "infonce_mutual_information",
]
