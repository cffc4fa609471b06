"""Task distributions: tasks, episodes (support/query), chemistry-aware splits and leakage reports.

A *task* is one material system (an element pair, an electrolyte system, a study). An *episode*
splits a task into a support set (the few measurements a model adapts on) and a query set (where it
is evaluated). A :class:`TaskSet` holds the tasks and makes the splits: by group (hold out every
task that contains an element / salt / study), by similarity clustering, or at random (for
contrast only). :func:`leakage_report` measures how close meta-test points sit to meta-train points
so that a leaky split is visible.

- :mod:`.task`: :class:`Task`, :class:`Episode`, :func:`sample_episode`.
- :mod:`.taskset`: :class:`TaskSet` (from a frame or arrays, episodes, splits),
  :func:`descriptor_tasks` and :func:`condition_tasks` (descriptor columns as structure conditions).
- :mod:`.frame` and :mod:`.roles`: the work of ``TaskSet.from_frame``: column roles (temperature,
  concentration), unit conversion and checks, named group keys, the column report.
- :mod:`.leakage`: :class:`LeakageReport`, :func:`leakage_report`.
- :mod:`._validate`: the argument checks (errors that name the argument and the fix).
"""

from .leakage import LeakageReport, leakage_report
from .task import Episode, Task, sample_episode
from .taskset import TaskSet, condition_tasks, descriptor_task, descriptor_tasks

__all__ = ["Episode", "LeakageReport", "Task", "TaskSet", "condition_tasks", "descriptor_task",
           "descriptor_tasks", "leakage_report",
           "sample_episode"]
