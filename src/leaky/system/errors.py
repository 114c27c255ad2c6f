"""The errors a user's input causes, as every layer raises them and the command line says them.

:class:`ParameterError` names the parameter as Python spells it (``workers``), and the
command line spells the same error with its flag (``--workers``). :class:`MissingExtraError`
says which optional extra to install. Anything else that escapes leaky is a bug.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MissingExtraError", "ParameterError"]


class MissingExtraError(ImportError):
    """An optional part of leaky needs a package that is not installed.

    The message names the package and the extra that installs it
    (``pip install 'leaky[onnx]'``): a user's choice to make, not a bug.
    """


class ParameterError(ValueError):
    """A bad argument, named so that each caller can say it in its own terms.

    ``template`` is the message with a ``{name}`` field for each parameter it names;
    ``str()`` fills in the names as a Python caller wrote them, :meth:`spelled` as another
    interface does (the command line's flags). Only those fields are filled: any other
    brace or percent sign (in a path or value the user gave) stays as it is.

    Examples:
        >>> error = ParameterError("Expected {workers} >= 1, but got 0", "workers")
        >>> str(error)
        'Expected workers >= 1, but got 0'
        >>> error.spelled(lambda name: "--" + name.replace("_", "-"))
        'Expected --workers >= 1, but got 0'
        >>> str(ParameterError("Expected {path} to exist, but got '{x}%d.json'", "path"))
        "Expected path to exist, but got '{x}%d.json'"
    """

    def __init__(self, template: str, *names: str) -> None:
        self.template, self.names = template, names
        super().__init__(self.spelled(lambda name: name))

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The message with each parameter's name given by ``spell(name)``."""
        text = self.template
        for name in self.names:
            text = text.replace("{" + name + "}", spell(name))
        return text
