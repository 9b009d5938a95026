"""`python -m tvm_alexnet` (and `torchrun -m tvm_alexnet`): the command line."""

from .cli import main

main()
