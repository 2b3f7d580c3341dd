"""The book's chapters as report functions: one module per page that computes everything the page
shows, section by section. Each section returns what the page displays (text as Markdown, frames,
figures: :func:`genemask.report.show`), so that a page holds its prose and one call per section, and
the analysis is tested as functions rather than only by "the page executes"."""
