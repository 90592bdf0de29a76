"""nbgrader's formgrader, pointed at a grading workspace written by `python -m grader autograde`.

`make formgrader GRADING=grading` sets GRADER_WORKSPACE (the workspace) and GRADER_COURSE (the course
root) and serves the workspace. Hand-graded scores entered in the formgrader go into
GRADING/gradebook.db; `python -m grader export --gradebook GRADING --out ...` then includes them, and
the total. The formgrader only grades here: releasing and collecting are done by `python -m grader`.
"""

import os

c = get_config()  # noqa: F821  (injected by traitlets)
workspace = os.path.abspath(os.environ.get("GRADER_WORKSPACE", "grading"))
course = os.path.abspath(os.environ.get("GRADER_COURSE", os.path.join(workspace, os.pardir)))

c.CourseDirectory.root = workspace
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(workspace, "gradebook.db")
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "nbgrader-feedback"   # grader autograde writes its own feedback/
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.source_directory = os.path.join(course, "solutions")
c.CourseDirectory.release_directory = "release"                # never the course's notebooks/
c.CourseDirectory.notebook_id = "*"
