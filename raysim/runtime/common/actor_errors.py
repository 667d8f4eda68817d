"""What a call to an actor that cannot take it raises, and says: decided by the raylet that
hosts the actor, or by the GCS for an actor whose node died.

Seed, phase 4 ("Method Invocation"), when the actor is not there to run the call. Ray's
caller decides this in its ``ActorTaskSubmitter`` from the actor's state as the GCS
publishes it: ``ActorDiedError`` once DEAD, ``ActorUnschedulableError`` if no node may host
it, ``ActorUnavailableError`` for a call interrupted by a restart or made while the actor
restarts with ``max_task_retries=0``. raysim decides where the calls wait.

Runs in: the raylet and the GCS.
"""


def interrupted_message(class_name: str, actor_id: str, what_died: str, where: str,
                        num_restarts: int, max_restarts: int) -> str:
    """The error of a call that was running when its actor's process died, the actor
    restarting (``where``: "" or " on another node")."""
    of = "" if max_restarts < 0 else f" of {max_restarts}"
    return (f"The actor {class_name} ({actor_id}) died while running this call: "
            f"{what_died}. The actor is restarting{where} (restart {num_restarts}{of}), "
            f"but this call is not retried. Tip: set max_task_retries on the actor to retry "
            f"calls that a restart interrupts.")


def restarting_message(class_name: str, actor_id: str, num_restarts: int,
                       max_restarts: int) -> str:
    """Why a call to a restarting actor fails at once. As in Ray, a call made while its
    actor restarts fails (``ActorUnavailableError``) if the actor's ``max_task_retries`` is
    0, and waits for the restart otherwise."""
    of = "" if max_restarts < 0 else f" of {max_restarts}"
    return (f"The actor {class_name} ({actor_id}) is restarting (restart {num_restarts}{of}), "
            f"so this call was not sent: with max_task_retries=0 a call to a restarting "
            f"actor fails at once, as in Ray. Tip: set max_task_retries on the actor to make "
            f"calls wait for the restart, or call again once it is alive.")


def death_error(cause: str | None) -> str:
    """The exception an actor's calls raise once it is dead for this cause."""
    return "ActorUnschedulableError" if cause == "ACTOR_UNSCHEDULABLE" else "ActorDiedError"
