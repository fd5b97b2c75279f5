package backend

// ShutdownBegan lets tests wait for the moment readiness starts failing
// instead of polling for it.
func (s *Server) ShutdownBegan() <-chan struct{} { return s.draining }
