"""Recordings without torch: reading and checking them (`recordings`) and the statistics of
`echodepth audio-stats` (`stats`)."""
