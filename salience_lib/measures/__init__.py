"""The five measures, one module each; every module has a plain function and a streaming accumulator.

* :mod:`~salience_lib.measures.entropy` — (a) how focused is the salience?
* :mod:`~salience_lib.measures.out_of_set` — (b) how does salience react to out-of-set input?
* :mod:`~salience_lib.measures.geometric` — (c) does salience follow geometric transforms?
* :mod:`~salience_lib.measures.stability` — (d) is salience stable across training runs?
* :mod:`~salience_lib.measures.degradation` — (e) does salience react sensibly to salience-guided blur?
"""

from salience_lib.measures import degradation, entropy, geometric, out_of_set, stability

__all__ = ["degradation", "entropy", "geometric", "out_of_set", "stability"]
