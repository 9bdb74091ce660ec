"""Pictures of motions: stick-figure animations (:mod:`.animation`) and the
project's figures (:mod:`.figures`: the samples figure, activation curves).

Floor: may import :mod:`models`, :mod:`dataset` and :mod:`utils`; never
:mod:`metrics`, :mod:`options`, :mod:`engine` or a script. matplotlib is
imported where it is used.
"""
