"""The composition root: assembles services into processes and provides the ``yingji`` command."""
