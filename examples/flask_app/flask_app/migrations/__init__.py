"""The example app's migrations, applied in version order by :func:`selfmigrate.apply`."""
