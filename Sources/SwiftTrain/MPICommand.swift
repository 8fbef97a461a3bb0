import ArgumentParser
import Experiments
import Foundation
import Training

/// The MPI phase of a many-run command (sweep, search): `body` runs after MPI has started, and every way out ends
/// all ranks alike — rejected input (rank 0 printed it) and a stop by signal finalize MPI and exit with their
/// statuses; any other error aborts the job, since the ranks may be out of step.
func runMPIPhase(_ launch: LaunchEnvironment, interrupted: String, _ body: () throws -> Void) throws {
    do {
        try body()
        MPISession.finalize()
    } catch is InputRejected {
        MPISession.finalize()
        throw ExitCode(inputErrorStatus)
    } catch let stopped as TrainingStopped {
        // Printed before finalizing: once one rank exits with 128 + signal, mpirun ends the others.
        if launch.rank == 0 { printError(interrupted) }
        MPISession.finalize()
        throw ExitCode(stopped.exitCode)
    } catch {
        printError("error (rank \(launch.rank)): \(error)")
        MPISession.abort(code: 1)
    }
}
