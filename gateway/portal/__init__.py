"""Portal pickup: a recipient's copy stays sealed here and is read in the web portal.

`custody` seals a copy so that only the link's secret and the master key
together open it; the pages are in `gateway.web.portal`, the delivery mode in
`gateway.delivery.portal`, the admin commands in `gateway.cli.portal`.
"""
