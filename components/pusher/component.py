"""``AtomicPusher``: TFX's Pusher component running keyclass's atomic executor."""

from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec

from keyclass.components.pusher import executor


class AtomicPusher(Pusher):
    """Pushes blessed models to ``<base>/<version>/``, appearing whole via one rename."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
