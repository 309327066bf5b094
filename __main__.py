"""The vsr Pulumi program: read the settings once, build the service, export its outputs."""

import pulumi

from stack.service import VsrService
from stack.settings import SettingsError, load_settings, pulumi_config

try:
    settings = load_settings(pulumi_config())
except SettingsError as exc:
    raise pulumi.RunError(str(exc)) from None

service = VsrService(f"vsr-{pulumi.get_stack()}", settings)
for key, value in service.outputs.items():
    if value is not None:
        pulumi.export(key, value)
