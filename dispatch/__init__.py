"""GB flexibility dispatch: products, dispatch instructions with revisions, signing,
acknowledgements, heartbeats and availability. Not yet implemented; see the roadmap in
the README."""
