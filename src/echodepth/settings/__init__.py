"""A run's settings: the declared settings of every component (`components`), the run's settings object
(`config.TrainConfig`), where its values come from (`sources`), the values each number accepts
(`bounds`), the ranges `echodepth tune` searches (`search_space`), the arguments the Python API and the
command line share (`arguments`) and settings files (`yaml_files`).

Nothing is imported here: the components (`data`, `losses`, `models`) import `bounds` and
`search_space` to declare their settings, and `components` imports them.
"""
