//! TURN in network namespaces (root): the rendered coturn config and the double-NAT lab.
