"""kws-distill: tiny keyword spotters distilled from large teachers, with synthesized speech and custom keywords.

Entry points: the ``distill`` command (``distill.cli``), ``distill.keyword.Detector`` for streaming detection.
"""
