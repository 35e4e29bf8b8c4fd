"""Record sources: where a reader's records and frames come from, one small class each.

Below the sample builders of ``datamodules.h36m`` / ``ntu`` (their ``make_sample``), above the
shared machinery (``base``, ``video``, ``transforms``); storage imports no reader and nothing of
``datamodules.prepare`` (which writes what ``prepared`` and ``chunks`` read).

| back-end          | Human3.6M                    | NTU                          | MPII                         |
|-------------------|------------------------------|------------------------------|------------------------------|
| raw files         | ``h36m_files.RawH36M``       | ``ntu_files.RawNTU``         | ``mpii_files.MPIIFiles``     |
| a prepared folder | ``h36m_prepared.PreparedH36M`` | ``ntu_prepared.PreparedNTU`` | ``mpii_prepared.PreparedMPII`` |
| LitData chunks    | ``chunks.H36MChunks``        | ``chunks.NTUChunks``         | —                            |

A Human3.6M source gives ``read(i) -> (H36MFrame, Frames)``; an NTU source ``read(v) -> NTUVideo``
(its frames read on demand) and ``frame_counts()`` (multi clips); an MPII source holds ``ann``
(its persons) and gives ``frames(i, window, size) -> Frames``. ``records`` holds those types,
``crops`` the stored-crop geometry, ``prepared`` the prepared folder's index.
"""
