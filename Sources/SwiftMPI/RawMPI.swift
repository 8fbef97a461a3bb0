import CMPI

/// The bare MPI calls the typed wrapper makes, with no checks and no Swift layers: the baseline `swift-train
/// bench-comm` measures the wrapper against (target: within 5%). Not for use in training code.
public enum RawMPI {
    /// MPI_Allreduce(MPI_IN_PLACE, …, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); returns MPI's error code.
    @discardableResult
    public static func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int32) -> Int32 {
        MPI_Allreduce(swt_in_place(), buffer, count, swt_type_float(), swt_op_sum(), swt_comm_world())
    }

    /// MPI_Reduce_scatter(send, receive, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); returns MPI's error code.
    @discardableResult
    public static func reduceScatterSum(_ send: UnsafePointer<Float>, _ receive: UnsafeMutablePointer<Float>,
                                        counts: UnsafePointer<Int32>) -> Int32 {
        MPI_Reduce_scatter(send, receive, counts, swt_type_float(), swt_op_sum(), swt_comm_world())
    }

    /// MPI_Allgatherv(MPI_IN_PLACE, …) over `counts`/`displacements`; returns MPI's error code.
    @discardableResult
    public static func allGatherInPlace(_ buffer: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>,
                                        displacements: UnsafePointer<Int32>) -> Int32 {
        MPI_Allgatherv(swt_in_place(), 0, swt_type_float(), buffer, counts, displacements, swt_type_float(), swt_comm_world())
    }
}
