"""``python -m course_tools.grade ASSIGNMENT``: the command line of :mod:`course_tools.grading`."""

from course_tools.grading.grade_class import main

if __name__ == "__main__":
    main()
