"""Every module that registers job kinds or schedules, imported by the app and by `voltway worker`.

Add one import line per feature module (e.g. `voltway.analytics.jobs`).
"""

import voltway.analytics.jobs  # noqa: F401
import voltway.ingest.jobs  # noqa: F401
import voltway.jobs.maintenance  # noqa: F401
