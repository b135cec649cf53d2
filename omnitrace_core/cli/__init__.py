"""The ``omnitrace`` command (also ``python -m omnitrace_core``): the command layer over the library.

    omnitrace trace --questions q.json --output out.jsonl        # batch tracing (omnitrace_core.batch)
    omnitrace verify --traces out.jsonl --output verified.jsonl   # batch verification
    omnitrace evaluate [--faithfulness]                           # scores on the known-truth benchmark
    omnitrace speech-eval --questions q.json --truth t.json --model M   # time bins vs speech segments
    omnitrace bench [--smoke]                                     # tracing cost vs plain generation
    omnitrace train-demo                                          # train the bundled demo model

- :mod:`.command`: the parser and the dispatch;
- :mod:`.options`: what the commands share: argument types, the model options (``--model``,
  ``--dtype``, ``--device``, ``--device-map``, ``--trust-remote-code``, media limits) and loading the
  tracer they name (:func:`omnitrace_core.loading.load_tracer`), exit statuses;
- one module per subcommand: its options and ``run(args)``.
"""

from .command import build_parser, main

__all__ = ["build_parser", "main"]
