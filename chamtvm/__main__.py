import sys

from .cli.main import main
from .core import interrupt

try:
    code = main()
except KeyboardInterrupt as e:  # re-raised after main had handled (and reported) the interrupt
    code = interrupt.exit_code(e)
interrupt.absorb_late()
sys.exit(code)
