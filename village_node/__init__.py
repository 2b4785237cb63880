"""The village kiosk (issue #4): enrolment, offline login, catalogue and sync, offline first.

``village_node.app.create_app(settings)`` builds the local app; ``sanji kiosk`` serves it on
127.0.0.1. It imports only ``core`` and ``sync``.
"""
