"""Rate-distortion design internals of the ``fisher`` search method (not a public API).

:mod:`~dnnjpeg.search.design.rdopt` designs a table one frequency at a time (RD-OPT),
:mod:`~dnnjpeg.search.design.jpegbits` counts what libjpeg spends on each coefficient,
:mod:`~dnnjpeg.search.design.fisher_weights` measures how much a classifier cares about each DCT
coefficient, and :mod:`~dnnjpeg.search.design.dct` holds the torch block DCT and colour transform.
"""
