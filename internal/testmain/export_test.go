package testmain

// RaceEnabled reports whether the test binary is built with -race.
const RaceEnabled = raceEnabled
