"""dsfc benchmarks (``make bench``): each module has a ``main()`` that prints a table."""
