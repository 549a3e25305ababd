"""A run's figures: the ``--json`` object, the console table, CSV files and the HTML report.

:func:`summarise` is the one place figures are computed (from
:mod:`improv.bench.measure`); everything else formats its result, so the console, the
JSON and the HTML can never disagree.
"""

from __future__ import annotations

from improv.bench.report.console import (
    BLOCKS as BLOCKS,
)
from improv.bench.report.console import (
    MQTT_ROWS as MQTT_ROWS,
)
from improv.bench.report.console import (
    PAIRED as PAIRED,
)
from improv.bench.report.console import (
    ROWS as ROWS,
)
from improv.bench.report.console import (
    notes_for as notes_for,
)
from improv.bench.report.console import (
    print_summary as print_summary,
)
from improv.bench.report.console import (
    sparkline as sparkline,
)
from improv.bench.report.console import (
    transport_line as transport_line,
)
from improv.bench.report.csv_files import (
    EVENT_COLUMNS as EVENT_COLUMNS,
)
from improv.bench.report.csv_files import (
    TURN_COLUMNS as TURN_COLUMNS,
)
from improv.bench.report.csv_files import (
    event_rows as event_rows,
)
from improv.bench.report.csv_files import (
    events_path as events_path,
)
from improv.bench.report.csv_files import (
    turn_rows as turn_rows,
)
from improv.bench.report.csv_files import (
    write_csv as write_csv,
)
from improv.bench.report.html_page import (
    write_html as write_html,
)
from improv.bench.report.summary import (
    AGENT_KEYS as AGENT_KEYS,
)
from improv.bench.report.summary import (
    RATIO_KEYS as RATIO_KEYS,
)
from improv.bench.report.summary import (
    REFERENCES as REFERENCES,
)
from improv.bench.report.summary import (
    SCHEMA_VERSION as SCHEMA_VERSION,
)
from improv.bench.report.summary import (
    Measured as Measured,
)
from improv.bench.report.summary import (
    measure_run as measure_run,
)
from improv.bench.report.summary import (
    summarise as summarise,
)
from improv.bench.report.summary import (
    transport_loss_rate as transport_loss_rate,
)
