"""The FSP polling agent: a library and command line that reach the VTN over HTTPS only
(requests and cryptography, no Django). Not yet implemented; see the roadmap in the
README."""
