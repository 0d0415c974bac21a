"""Ray Tune searches over distillation, batch size / learning-rate scaling and training knobs (``distill tune``).

Ray is an optional extra (``pip install "kws-distill[tune]"``): it is imported only inside the functions that
need it, so ``import tune`` and ``distill --help`` work without it.
"""
